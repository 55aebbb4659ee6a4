# Mask R-CNN + FPN with a ConMIM ViT-L/16 (1024 wide, 24 blocks), 1x schedule (12 COCO epochs, lr x0.1
# after 8 and 11); otherwise as conmim_vit-l_mask-rcnn_coco.py.
_base_ = ['./conmim_vit-l_mask-rcnn_coco.py']

train_dataloader = dict(dataset=dict(times=1))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=1000),
    dict(type='MultiStepLR', begin=0, end=12, by_epoch=True, milestones=[8, 11], gamma=0.1),
]
