# The paper's 384x384 ConMIM ViT-S/16 (83.9 top-1, 300 ep pretraining): the 224x224 fine-tuned
# model (conmim_vit-s_ft_in1k.py) trained 10 % more epochs at 384x384, i.e. 10 epochs. The
# recipe is conmim_vit-b_ft_in1k-384px.py at ViT-S width (lr, warm-up and augmentation are that
# config's choices: the paper gives only the epoch ratio).
#
#   python tools/train.py configs/cls/conmim_vit-s_ft_in1k-384px.py --cfg-options \
#       model.backbone.init_cfg.checkpoint=FT224.pth model.head.init_cfg.checkpoint=FT224.pth
_base_ = ['./conmim_vit-b_ft_in1k-384px.py', '../_base_/models/vit-s-p16.py']

model = dict(backbone=_base_.vit_s_p16, head=dict(in_channels=_base_.vit_s_p16_embed_dims))
