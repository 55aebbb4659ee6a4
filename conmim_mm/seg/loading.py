"""mmseg's ``LoadAnnotations`` that skips a sample whose label map cannot be read."""
from mmseg.datasets.transforms import LoadAnnotations

from ..datasets.loading import SkipsUnreadableAnnotations


class LoadAnnotationsOrSkip(SkipsUnreadableAnnotations, LoadAnnotations):
    """mmseg's ``LoadAnnotations`` that skips the sample when its label map (``seg_map_path``)
    is missing, empty, not decodable or truncated, as ``LoadImageFromFileOrSkip`` does for its
    image: a warning names the file and the reason, the dataset loads another sample, and the
    run stops when more than ``max_unreadable_share`` of the loads fail (judged over at least
    ``min_loads`` loads). Other arguments are those of mmseg's ``LoadAnnotations``.
    """

