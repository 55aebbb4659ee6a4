# The ViT of the embedded Fashion-MNIST demo and benchmark: the BEiT-style ViT of vit-b-p16.py at
# ViT-Tiny width (192 wide, 3 heads, MLP 768), 6 layers, 4-px patches (7x7 tokens on 28x28
# images). ConMIM pretraining (conmim_vit-t-p4.py), the fine-tuning recipe
# (configs/cls/conmim_vit-t-p4_ft_fashion-mnist.py) and the benchmark's SimMIM arm take
# `conmim_vit`; the MAE arm builds mmpretrain's ViT of the same `vit_t_p4_arch` and patch size.
# A checkpoint of one fits the others.
_base_ = './vit-b-p16.py'

vit_t_p4_arch = dict(embed_dims=192, num_layers=6, num_heads=3, feedforward_channels=768)
vit_t_p4_patch_size = 4
embed_dims = vit_t_p4_arch['embed_dims']
conmim_vit = dict(arch=dict(vit_t_p4_arch, _delete_=True), img_size=28,
                  patch_size=vit_t_p4_patch_size)
