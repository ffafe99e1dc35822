"""Each distinct view goes through the model once: ``distinct_views`` is exact, and ``family_features`` gives every
view the features it would get on its own."""

import torch

from inv_kernels.measure.synthetic import distinct_views, family_features
from inv_kernels.transforms import get_family, iter_views


class Pooled:
    """A stand-in extractor: (B, 3, S, S) -> (B, 6) channel means and maxima; counts the views it sees."""

    class info:
        feature_dim = 6

    def __init__(self):
        self.seen = 0

    def __call__(self, views):
        self.seen += len(views)
        return torch.cat([views.mean((2, 3)), views.amax((2, 3))], 1)


def test_distinct_views_is_exact_and_keeps_first_occurrences():
    views = torch.rand(40, 3, 9, 7)
    views[[5, 17, 33]] = views[2].clone()
    views[30] = views[11]
    keep, inverse = distinct_views(views)
    assert torch.equal(views[keep][inverse], views)
    assert len(keep) == 36 and torch.equal(keep, keep.sort().values)
    assert inverse[17] == inverse[2] and inverse[30] == inverse[11]


def test_views_that_differ_off_the_sampled_pixels_stay_apart():
    views = torch.zeros(3, 3, 64, 64)
    views[1].view(-1)[1] = 0.5  # the key samples every 12th value: this one is not sampled
    views[2].view(-1)[-1] = 0.5
    keep, inverse = distinct_views(views)
    assert len(keep) == 3 and torch.equal(inverse, torch.arange(3))


def test_family_features_equal_view_by_view_features_with_fewer_forwards():
    images = [torch.randint(0, 256, (3, 80, 70), dtype=torch.uint8) for _ in range(3)]
    extractor = Pooled()
    got = family_features(extractor, images, "shear", out_size=32, resize_size=36, batch_size=300, progress=False)
    expected = torch.empty_like(got)
    for i, rows, views in iter_views("shear", images, out_size=32, resize_size=36, chunk=64):
        expected[i, rows] = Pooled()(views)
    assert got.shape == (3, get_family("shear").k, 6)
    assert torch.equal(got, expected)
    assert extractor.seen < 3 * get_family("shear").k  # small shears round to the same pixels


def test_views_of_several_images_share_a_batch():
    images = [torch.randint(0, 256, (3, 40, 40), dtype=torch.uint8) for _ in range(5)]
    calls = []

    class Recording(Pooled):
        def __call__(self, views):
            calls.append(len(views))
            return super().__call__(views)

    family_features(Recording(), images, "h_flip", out_size=32, resize_size=36, batch_size=256, progress=False)
    assert calls == [10]  # 5 images x 2 views in one forward pass
