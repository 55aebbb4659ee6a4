# The loaders that skip a training sample whose image or annotation file cannot be read (missing,
# empty, undecodable, truncated, too many pixels), with a warning naming the file, instead of
# ending the run; the run stops when more than 1 % of the loads fail (max_unreadable_share).
# A segmentation or detection config inherits this file and maps the host library's training
# pipeline through it, keeping every other step as the host base writes it:
#   train_pipeline = [dict(step, type=_base_.skip_unreadable.get(step['type'], step['type']))
#                     for step in _base_.train_pipeline]
# (registered in mmseg / mmdet by conmim_mm.seg / conmim_mm.det, which those configs import).
skip_unreadable = dict(LoadImageFromFile='LoadImageFromFileOrSkip',
                       LoadAnnotations='LoadAnnotationsOrSkip')
