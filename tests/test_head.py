import math

import pytest
import torch

from conmim_mm.models import ConMIMHead


def reference_loss(pred, target, mask, temperature):
    """The paper's loss, written out patch by patch."""
    losses = []
    B, L, _ = pred.shape
    for b in range(B):
        for i in range(L):
            if not mask[b, i]:
                continue
            q = pred[b, i] / pred[b, i].norm()
            sims = [float(q @ (target[b, j] / target[b, j].norm())) / temperature for j in range(L)]
            log_denominator = math.log(sum(math.exp(s) for s in sims))
            losses.append(log_denominator - sims[i])
    return sum(losses) / len(losses)


@pytest.mark.parametrize('L', [16, 49])
@pytest.mark.parametrize('temperature', [0.1, 0.5])
def test_loss_matches_hand_written_reference(L, temperature):
    torch.manual_seed(L)
    B, C = 3, 8
    pred, target = torch.randn(B, L, C, dtype=torch.float64), torch.randn(B, L, C, dtype=torch.float64)
    mask = torch.rand(B, L) < 0.4
    mask[:, 0] = True
    head = ConMIMHead(temperature=temperature)
    loss = head.loss(pred, target, mask)
    assert loss.dim() == 0
    assert loss.item() == pytest.approx(reference_loss(pred, target, mask, temperature), rel=1e-5)


def test_negatives_are_only_patches_of_the_same_image():
    torch.manual_seed(0)
    pred, target = torch.randn(2, 9, 4), torch.randn(2, 9, 4)
    mask = torch.zeros(2, 9, dtype=torch.bool)
    mask[0, 3] = True
    head = ConMIMHead()
    before = head.loss(pred, target, mask)
    target[1] = torch.randn(9, 4)  # another image's teacher tokens must not matter
    assert head.loss(pred, target, mask) == before


def test_perfect_match_gives_low_loss_and_full_accuracy():
    pred = torch.eye(6).unsqueeze(0)
    mask = torch.ones(1, 6, dtype=torch.bool)
    loss, acc = ConMIMHead(temperature=0.05).loss_and_accuracy(pred, pred.clone(), mask)
    assert loss < 1e-6 and acc == 1


def test_errors():
    head = ConMIMHead()
    with pytest.raises(ValueError, match='no patch'):
        head.loss(torch.randn(1, 4, 2), torch.randn(1, 4, 2), torch.zeros(1, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match=r'\(B, L, C\)'):
        head.loss(torch.randn(1, 4, 2), torch.randn(1, 5, 2), torch.ones(1, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match='positive'):
        ConMIMHead(temperature=0)
