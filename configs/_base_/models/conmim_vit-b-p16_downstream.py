# A ConMIM ViT-B/16 as the backbone of a downstream model, and the layer-wise lr decay optimiser
# wrapper, shared by the classification, linear-probe, segmentation and detection configs.
# Those configs also inherit mmpretrain / mmseg / mmdet bases that define `model` and
# `optim_wrapper`, so the shared parts are named variables that each config takes:
#
#   model = dict(backbone=dict(_base_.conmim_backbone, _delete_=True, out_indices=...))
#   optim_wrapper = dict(_base_.layer_decay_optim_wrapper, _delete_=True)
#
# The backbone is the ViT of vit-b-p16.py, the one pretraining uses (`embed_dims` comes from
# there too); the shared relative position table of pretraining becomes one table per block,
# resized to the downstream image size when the checkpoint loads. Pass the pretrained weights
# with --cfg-options model.backbone.init_cfg.checkpoint=PATH: the teacher extracted by
# tools/model_converters/extract_backbone.py (prefix 'backbone.'), or a pretraining checkpoint
# with model.backbone.init_cfg.prefix=teacher.module.backbone. (the official recipe fine-tunes
# the teacher). Loading is strict.
_base_ = './vit-b-p16.py'
custom_imports = dict(imports=['conmim_mm'], allow_failed_imports=False)

conmim_backbone = dict(
    _base_.conmim_vit,
    out_type='featmap',
    final_norm=False,
    drop_path_rate=0.1,
    use_rel_pos_bias=True,
    use_shared_rel_pos_bias=False,
    with_mask_token=False,
    init_cfg=dict(type='Pretrained', checkpoint='', prefix='backbone.'))

# AdamW with layer-wise lr decay driven by ConMIMViT.get_layer_depth (one constructor for the
# three libraries), no weight decay on 1-D parameters and tokens, AMP. Values of the official
# ViT-B fine-tuning command (lr 4e-3 at batch 1024, decay 0.65); seg and det set their own.
layer_decay_optim_wrapper = dict(
    type='DeviceAmpOptimWrapper',  # bf16 where the GPU has it, fp16 + loss scaling on older ones
    loss_scale='dynamic',
    optimizer=dict(type='AdamW', lr=4e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.05),
    constructor='BackboneLayerDecayOptimWrapperConstructor',
    paramwise_cfg=dict(
        layer_decay_rate=0.65,
        norm_decay_mult=0., bias_decay_mult=0., flat_decay_mult=0.,
        custom_keys={'.cls_token': dict(decay_mult=0.), '.pos_embed': dict(decay_mult=0.)}))
