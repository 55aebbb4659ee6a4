# Fine-tuning of the benchmark's MAE arm: the one Fashion-MNIST recipe
# (configs/cls/conmim_vit-t-p4_ft_fashion-mnist.py) on mmpretrain's ViT, the architecture MAE
# pretrains (sin-cos absolute positions, no layer scale), at the same width, depth and patch
# size; load the MAE encoder with `model.backbone.init_cfg.checkpoint=<MAE ckpt>`.
_base_ = ['../cls/conmim_vit-t-p4_ft_fashion-mnist.py']

model = dict(
    backbone=dict(
        _delete_=True,
        type='VisionTransformer',
        arch=_base_.vit_t_p4_arch,
        img_size=_base_.img_size,
        patch_size=_base_.vit_t_p4_patch_size,
        out_type='avg_featmap',
        final_norm=False,
        drop_path_rate=0.1,
        init_cfg=dict(type='Pretrained', checkpoint='', prefix='backbone.')))
