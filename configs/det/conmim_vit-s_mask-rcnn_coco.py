# Mask R-CNN + FPN, 3x schedule, with a ConMIM ViT-S/16 (384 wide, 12 blocks): the ViT-B recipe of
# conmim_vit-b_mask-rcnn_coco.py (BEiT-style protocol, not the paper's MIMDet) with this width.
_base_ = ['./conmim_vit-b_mask-rcnn_coco.py', '../_base_/models/vit-s-p16.py']

embed_dims = _base_.vit_s_p16_embed_dims
model = dict(backbone=dict(_base_.vit_s_p16, out_indices=(3, 5, 7, 11)),
             neck=[dict(_base_.model.neck[0], in_channels=embed_dims),  # ViT-B's pyramid, FPN
                   dict(_base_.model.neck[1], in_channels=[embed_dims] * 4)])
