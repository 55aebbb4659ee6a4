# SimMIM arm of the Fashion-MNIST benchmark (docs/results.md): a second masked-image-modelling
# baseline next to MAE, to tell a gap that is ConMIM's from one that is MIM's at this scale.
# mmpretrain's SimMIM parts (the SimMIM algorithm, SimMIMLinearDecoder: a 1x1 conv to 4x4x3
# pixels per token and a pixel shuffle, SimMIMHead: L1 on the pixels of the masked patches,
# SimMIMMaskGenerator) on the ConMIM arm's encoder: `conmim_vit` of _base_/models/vit-t-p4.py
# (the BEiT-style ViT at ViT-Tiny width, 6 layers, 4-px patches, layer scale 0.1, one shared
# relative position table, a mask token), the ViT setting of the SimMIM paper. The
# encoder's patch tokens go to the decoder as a 7x7 map (out_type='featmap', final norm on).
# Masking: SimMIM's ratio 0.6 on 4-px mask patches (one 28-px image holds 7x7 patches; SimMIM's
# 32-px mask patches at 192 px are 1/6 of the side, which is no grid here), random, no blocks.
# Same crop, flip, batch, lr, schedule and epoch budget as the other arms; the optimiser is
# SimMIM's AdamW (beta2 0.999, weight decay 0.05 except on norms, biases, tokens and the
# relative position table, gradient clipping 5).
# Fine-tuning: the one ConMIM recipe (configs/cls/conmim_vit-t-p4_ft_fashion-mnist.py, the same
# encoder) with model.backbone.init_cfg.prefix='backbone.'.
_base_ = [
    '../_base_/models/vit-t-p4.py',
    '../_base_/datasets/fashion_mnist.py',
    '../_base_/fashion_mnist_baseline_runtime.py',  # schedule, hooks, runtime
]

patch_size = _base_.vit_t_p4_patch_size
data_preprocessor = dict(type='SelfSupDataPreprocessor')
train_pipeline = [
    *_base_.pretrain_crop,
    dict(type='SimMIMMaskGenerator', input_size=_base_.img_size, mask_patch_size=patch_size,
         model_patch_size=patch_size, mask_ratio=0.6),
    dict(type='PackInputs'),
]
train_dataloader = dict(_base_.pretrain_loader,
                        dataset=dict(_base_.train_set, pipeline=train_pipeline))

model = dict(
    type='SimMIM',
    backbone=dict(_base_.conmim_vit, out_type='featmap', final_norm=True, drop_path_rate=0.),
    neck=dict(type='SimMIMLinearDecoder', in_channels=_base_.embed_dims,
              encoder_stride=patch_size),
    head=dict(type='SimMIMHead', patch_size=patch_size,
              loss=dict(type='PixelReconstructionLoss', criterion='L1', channel=3)))

optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.05),
    clip_grad=dict(max_norm=5.0),
    paramwise_cfg=dict(norm_decay_mult=0., bias_decay_mult=0., flat_decay_mult=0.,
                       custom_keys={'cls_token': dict(decay_mult=0.),
                                    'mask_token': dict(decay_mult=0.),
                                    'relative_position_bias_table': dict(decay_mult=0.)}))
custom_hooks = [dict(_base_.knn_monitor, encoder='student')]
