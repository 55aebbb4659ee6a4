# What tools/demo.sh trains: the embedded recipe (conmim_vit-t-p4_fashion-mnist.py) plus the
# teacher's kNN top-1 before training and after every epoch, on 2,000 images of the validation
# split with the first 5,000 training images as the bank: the curves of the README
# (tools/analysis/plot_curves.py), about 40 s per evaluation on 2 cores. Kept out of the recipe
# itself so that the runs built on it (tests, benchmark arms) do not pay for the evaluations.
_base_ = ['./conmim_vit-t-p4_fashion-mnist.py']

custom_hooks = [
    dict(type='EpochSeedHook'),
    dict(_base_.knn_monitor, encoder='teacher', before_train=True,
         bank_dataloader=dict(_base_.knn_monitor.bank_dataloader,
                              dataset=dict(_base_.knn_monitor.bank_dataloader.dataset,
                                           indices=5000))),
]
work_dir = './work_dirs/conmim_vit-t-p4_fashion-mnist'  # where the README's next steps look
