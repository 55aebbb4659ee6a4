# ConMIM ViT-B/16 pretraining on ImageNet-1K, 800 epochs (paper Table 1: 83.7 top-1 after
# fine-tuning). 32 GPUs x 64 images = 2048; lr is scaled by auto_scale_lr for other batches.
_base_ = [
    '../_base_/models/conmim_vit-b-p16.py',
    '../_base_/datasets/imagenet_conmim.py',
    '../_base_/schedules/conmim_pretrain_adamw.py',
    '../_base_/pretrain_runtime.py',
]
