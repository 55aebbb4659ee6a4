# ConMIM ViT-B/16 with both views built by the data workers on the CPU (mmpretrain's
# transforms, the pipeline before issue 15) instead of on the training device: the reference
# for comparisons. Any pretraining config switches the same way (ViT-L: with its random mask
# generator in place of the block one, as conmim_vit-l.py does for train_pipeline).
_base_ = ['./conmim_vit-b.py']

train_dataloader = dict(dataset=dict(pipeline=_base_.cpu_views_pipeline))
