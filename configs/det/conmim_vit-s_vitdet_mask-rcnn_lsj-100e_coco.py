# ViTDet Mask R-CNN, 100 epochs, on a ConMIM ViT-S/16 (384 wide, 12 blocks): the ViT-B recipe of
# conmim_vit-b_vitdet_mask-rcnn_lsj-100e_coco.py with this width (global blocks 2, 5, 8, 11, drop
# path 0.1, layer decay 0.7 as ViT-B; ViTDet published no ViT-S recipe).
_base_ = ['./conmim_vit-b_vitdet_mask-rcnn_lsj-100e_coco.py']

embed_dims = 384
model = dict(backbone=dict(arch='small'), neck=dict(in_channels=embed_dims))
