# ViTDet Mask R-CNN, 100 epochs, on a ConMIM ViT-S/16 (384 wide, 12 blocks): the ViT-B recipe of
# conmim_vit-b_vitdet_mask-rcnn_lsj-100e_coco.py with this width (global blocks 2, 5, 8, 11, drop
# path 0.1, layer decay 0.7 as ViT-B; ViTDet published no ViT-S recipe).
_base_ = ['./conmim_vit-b_vitdet_mask-rcnn_lsj-100e_coco.py', '../_base_/models/vit-s-p16.py']

embed_dims = _base_.vit_s_p16_embed_dims
model = dict(backbone=_base_.vit_s_p16, neck=dict(in_channels=embed_dims))
