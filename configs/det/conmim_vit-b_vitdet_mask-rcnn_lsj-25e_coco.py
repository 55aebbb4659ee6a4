# ViTDet Mask R-CNN on a ConMIM ViT-B/16 for 25 epochs: the 100-epoch recipe of
# conmim_vit-b_vitdet_mask-rcnn_lsj-100e_coco.py with the schedule divided by 4 (lr x0.1 at 88 %
# and 96 % of it, as there), for comparisons at a quarter of the cost. No ViTDet result exists
# at 25 epochs. The nearest published number, 48.0 box AP / 43.0 mask AP for an MAE ViT-B at 25
# epochs, is the hustvl/MIMDet README's re-implementation of "Benchmarking Detection Transfer
# Learning with Vision Transformers" (Li et al. 2021), another recipe (no windowed attention,
# no simple pyramid): a rough yardstick, not an anchor (the 100-epoch ViTDet ones are 51.6 / 45.9).
_base_ = ['./conmim_vit-b_vitdet_mask-rcnn_lsj-100e_coco.py']

max_iters = 46094  # 25 epochs = 184,375 / 4 iterations at batch 64
milestones = [40972, 44386]  # 163,889 / 4 and 177,546 / 4, rounded down
train_cfg = dict(max_iters=max_iters)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=250),
    dict(type='MultiStepLR', begin=0, end=max_iters, by_epoch=False, milestones=milestones,
         gamma=0.1),
]
