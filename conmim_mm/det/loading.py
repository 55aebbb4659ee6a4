"""mmdet's ``LoadAnnotations`` that skips a sample whose annotation file cannot be read."""
from mmdet.datasets.transforms import LoadAnnotations

from ..datasets.loading import SkipsUnreadableAnnotations


class LoadAnnotationsOrSkip(SkipsUnreadableAnnotations, LoadAnnotations):
    """mmdet's ``LoadAnnotations`` that skips the sample when the segmentation map it reads
    (``with_seg``: ``seg_map_path``) is missing, empty, not decodable or truncated, as
    ``LoadImageFromFileOrSkip`` does for its image: a warning names the file and the reason,
    the dataset loads another sample, and the run stops when more than ``max_unreadable_share``
    of the loads fail (judged over at least ``min_loads`` loads). Boxes and polygons come from
    the dataset's annotation file, read when the dataset is built. Other arguments are those of
    mmdet's ``LoadAnnotations``.
    """

