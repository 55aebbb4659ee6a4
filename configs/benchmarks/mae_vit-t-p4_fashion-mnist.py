# MAE arm of the Fashion-MNIST benchmark (docs/results.md): mmpretrain's MAE (MAEViT encoder
# that drops 75 % of the patches, a light decoder, normalised-pixel L2 loss) on the ViT of
# _base_/models/vit-t-p4.py (same width, depth, heads and 4-px patches as the ConMIM arm), with
# the same crop, flip, batch, lr, schedule and epoch budget. MAEViT is mmpretrain's ViT: fixed
# sin-cos absolute position embedding, no layer scale, no relative position bias. The MAE
# optimiser (beta2 0.95, no decay on norms / biases / tokens) and init are mmpretrain's
# mae_vit-base-p16 values.
_base_ = [
    '../_base_/models/vit-t-p4.py',
    '../_base_/datasets/fashion_mnist.py',
    '../_base_/fashion_mnist_baseline_runtime.py',  # schedule, hooks, runtime
]

data_preprocessor = dict(type='SelfSupDataPreprocessor')
train_pipeline = [*_base_.pretrain_crop, dict(type='PackInputs')]
train_dataloader = dict(_base_.pretrain_loader,
                        dataset=dict(_base_.train_set, pipeline=train_pipeline))

patch_size = _base_.vit_t_p4_patch_size
model = dict(
    type='MAE',
    backbone=dict(type='MAEViT', arch=_base_.vit_t_p4_arch, img_size=_base_.img_size,
                  patch_size=patch_size, mask_ratio=0.75),
    neck=dict(type='MAEPretrainDecoder', num_patches=(_base_.img_size // patch_size)**2,
              patch_size=patch_size, in_chans=3, embed_dim=_base_.embed_dims,
              decoder_embed_dim=128, decoder_depth=2, decoder_num_heads=4, mlp_ratio=4.),
    head=dict(type='MAEPretrainHead', norm_pix=True, patch_size=patch_size,
              loss=dict(type='PixelReconstructionLoss', criterion='L2')),
    init_cfg=[
        dict(type='Xavier', layer='Linear', distribution='uniform'),
        dict(type='Constant', layer='LayerNorm', val=1.0, bias=0.0)
    ])

optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-3, betas=(0.9, 0.95), weight_decay=0.05),
    paramwise_cfg=dict(custom_keys={
        'ln': dict(decay_mult=0.0), 'bias': dict(decay_mult=0.0),
        'pos_embed': dict(decay_mult=0.), 'mask_token': dict(decay_mult=0.),
        'cls_token': dict(decay_mult=0.)}))
custom_hooks = [dict(_base_.knn_monitor, encoder='student')]
