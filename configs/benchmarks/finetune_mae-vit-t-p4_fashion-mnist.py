# Fine-tuning of the MAE arm: the same classifier recipe on mmpretrain's ViT (the
# architecture MAE pretrains: sin-cos absolute positions, no layer scale), loading the MAE
# encoder with `model.backbone.init_cfg.checkpoint=<MAE ckpt>`.
_base_ = ['./finetune_vit-t-p4_fashion-mnist.py']

model = dict(
    backbone=dict(
        _delete_=True,
        type='VisionTransformer',
        arch=dict(embed_dims=192, num_layers=12, num_heads=3, feedforward_channels=768),
        img_size=28, patch_size=4,
        out_type='avg_featmap', final_norm=False, drop_path_rate=0.1,
        init_cfg=dict(type='Pretrained', checkpoint=None, prefix='backbone.')))
