# ConMIM ViT-B/16 pretraining on ImageNet-1K, 800 epochs (paper Table 1: 83.7 top-1 after
# fine-tuning). Total batch 2048 = 32 GPUs x 64 images; other clusters keep it by gradient
# accumulation (the schedule base; --auto-scale-lr scales the lr instead).
_base_ = [
    '../_base_/models/conmim_vit-b-p16.py',
    '../_base_/datasets/imagenet_conmim.py',
    '../_base_/schedules/conmim_pretrain_adamw.py',
    '../_base_/pretrain_runtime.py',
]
