# The ViT of the embedded Fashion-MNIST demo and benchmark: ViT-Tiny width (192 wide, 3 heads,
# MLP 768), 6 layers, 4-px patches (7x7 tokens on 28x28 images). ConMIM pretraining
# (conmim_vit-t-p4.py), the fine-tuning recipe (configs/cls/conmim_vit-t-p4_ft_fashion-mnist.py)
# and the benchmark's MAE arm all read it from here, so a checkpoint of one fits the others.
vit_t_p4_arch = dict(embed_dims=192, num_layers=6, num_heads=3, feedforward_channels=768)
vit_t_p4_patch_size = 4
