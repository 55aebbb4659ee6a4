# Mask R-CNN + FPN, 3x schedule, with a ConMIM ViT-L/16 (1024 wide, 24 blocks): the ViT-B
# recipe of conmim_vit-b_mask-rcnn_coco.py (BEiT-style protocol, not the paper's MIMDet) with
# this width, features of blocks 8/12/16/24 and layer decay 0.85 for twice the depth (this
# package's choice; ConMIM published no ViT-L COCO recipe).
_base_ = ['./conmim_vit-b_mask-rcnn_coco.py', '../_base_/models/vit-l-p16.py']

embed_dims = _base_.vit_l_p16_embed_dims
model = dict(backbone=dict(_base_.vit_l_p16, out_indices=(7, 11, 15, 23)),
             neck=[dict(_base_.model.neck[0], in_channels=embed_dims),  # ViT-B's pyramid, FPN
                   dict(_base_.model.neck[1], in_channels=[embed_dims] * 4)])
optim_wrapper = dict(paramwise_cfg=dict(layer_decay_rate=0.85))
