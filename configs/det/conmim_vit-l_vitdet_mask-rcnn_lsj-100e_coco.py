# ViTDet Mask R-CNN, 100 epochs, on a ConMIM ViT-L/16 (1024 wide, 24 blocks): the ViT-B recipe of
# conmim_vit-b_vitdet_mask-rcnn_lsj-100e_coco.py with global attention in blocks 5, 11, 17, 23,
# drop path 0.4 and layer decay 0.8 (detectron2 projects/ViTDet/configs/COCO/
# mask_rcnn_vitdet_l_100ep.py).
_base_ = ['./conmim_vit-b_vitdet_mask-rcnn_lsj-100e_coco.py', '../_base_/models/vit-l-p16.py']

embed_dims = _base_.vit_l_p16_embed_dims
model = dict(
    backbone=dict(_base_.vit_l_p16, global_attn_indices=(5, 11, 17, 23), out_indices=(23, ),
                  drop_path_rate=0.4),
    neck=dict(in_channels=embed_dims))
optim_wrapper = dict(paramwise_cfg=dict(layer_decay_rate=0.8))
