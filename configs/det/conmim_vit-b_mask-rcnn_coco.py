# COCO detection and instance segmentation with a ConMIM ViT-B/16: Mask R-CNN + FPN, the 3x
# multi-scale schedule (36 epochs, short side 640-800, batch 16 = 8 GPUs x 2) that ConMIM's
# detection follows (MIMDet's 3x recipe), AdamW with layer-wise lr decay, drop path 0.1, AMP.
# Block 4/6/8/12 feature maps (stride 16) become strides 4/8/16/32 with ViTFeaturePyramid, as
# BEiT/iBOT/CAE did, then a standard FPN. The ViT attends globally over the whole image (any size
# that is a multiple of 16); its relative position tables are sized for 800x1344 and resized on
# the fly for other shapes. 1x schedule: conmim_vit-b_mask-rcnn-1x_coco.py.
#
#   python tools/train.py configs/det/conmim_vit-b_mask-rcnn_coco.py \
#       --cfg-options model.backbone.init_cfg.checkpoint=PRETRAIN.pth
# PRETRAIN.pth: the teacher extracted by tools/model_converters/extract_backbone.py (prefix
# 'backbone.'), or a pretraining checkpoint with model.backbone.init_cfg.prefix=teacher.module.backbone.
_base_ = [
    'mmdet::common/ms-poly_3x_coco-instance.py',
    'mmdet::_base_/models/mask-rcnn_r50_fpn.py',
]
custom_imports = dict(imports=['conmim_mm', 'conmim_mm.det'], allow_failed_imports=False)

embed_dims = 768
model = dict(
    backbone=dict(
        _delete_=True,
        type='ConMIMViT',
        arch='base',
        img_size=(800, 1344),  # tables resized 14x14 -> 50x84 when the checkpoint loads
        patch_size=16,
        out_indices=(3, 5, 7, 11),
        out_type='featmap',
        final_norm=False,
        drop_path_rate=0.1,
        layer_scale_init_value=0.1,
        use_abs_pos_emb=False,
        use_rel_pos_bias=True,
        use_shared_rel_pos_bias=False,
        with_mask_token=False,
        use_checkpoint=True,  # ~4000 tokens per image: recompute block activations in backward
        init_cfg=dict(type='Pretrained', checkpoint='', prefix='backbone.')),
    neck=[
        dict(type='ViTFeaturePyramid', in_channels=embed_dims, rescales=(4, 2, 1, 0.5),
             norm_cfg=dict(type='SyncBN', requires_grad=True)),
        dict(type='FPN', in_channels=[embed_dims] * 4, out_channels=256, num_outs=5),
    ])

optim_wrapper = dict(
    _delete_=True,
    type='AmpOptimWrapper',
    loss_scale='dynamic',
    optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05),
    constructor='BackboneLayerDecayOptimWrapperConstructor',
    paramwise_cfg=dict(
        layer_decay_rate=0.75,
        norm_decay_mult=0., bias_decay_mult=0., flat_decay_mult=0.,
        custom_keys={'.cls_token': dict(decay_mult=0.), '.pos_embed': dict(decay_mult=0.)}))

param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=1000),
    dict(type='MultiStepLR', begin=0, end=12, by_epoch=True, milestones=[9, 11], gamma=0.1),
]
# 12 epochs over the dataset repeated 3 times (RepeatDataset) = 36 COCO epochs
train_cfg = dict(max_epochs=12, val_interval=1)
default_hooks = dict(
    divergence=dict(type='DivergenceGuardHook'),  # stop on a NaN loss, never save NaN weights
    checkpoint=dict(type='AtomicCheckpointHook', interval=1, max_keep_ckpts=2))
auto_scale_lr = dict(enable=False, base_batch_size=16)
