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


def boolean_mask_loss(pred, target, mask, temperature):
    """The head as it was: masked rows picked by ``logits[mask]`` (a size only the device
    knows), then the mean cross-entropy."""
    pred = torch.nn.functional.normalize(pred.float(), dim=-1)
    target = torch.nn.functional.normalize(target.float(), dim=-1)
    logits = torch.bmm(pred, target.transpose(1, 2)) / temperature
    labels = torch.arange(pred.shape[1]).expand_as(mask)
    return torch.nn.functional.cross_entropy(logits[mask], labels[mask])


@pytest.mark.parametrize('seed', range(40))
def test_fp32_loss_and_gradients_bit_identical_to_boolean_mask_selection(seed):
    """Variable masked counts per image (block masking), fp32: the same bits, not only close."""
    g = torch.Generator().manual_seed(seed)
    B = int(torch.randint(1, 40, (1,), generator=g))
    L = (16, 49, 196, 64)[seed % 4]
    pred = torch.randn(B, L, 32, generator=g, requires_grad=True)
    target = torch.randn(B, L, 32, generator=g, requires_grad=True)
    mask = torch.rand(B, L, generator=g) < torch.rand(B, 1, generator=g)  # count varies per image
    mask[0, 0] = True
    expected = boolean_mask_loss(pred, target, mask, 0.1)
    expected_grads = torch.autograd.grad(expected, (pred, target))
    loss = ConMIMHead(temperature=0.1).loss(pred, target, mask)
    grads = torch.autograd.grad(loss, (pred, target))
    assert torch.equal(loss, expected)
    for got, want in zip(grads, expected_grads):
        assert torch.equal(got, want)


def test_accuracy_counts_masked_rows_only():
    torch.manual_seed(0)
    pred, target = torch.randn(2, 9, 4), torch.randn(2, 9, 4)
    mask = torch.rand(2, 9) < 0.5
    mask[0, 0] = True
    _, acc = ConMIMHead().loss_and_accuracy(pred, target, mask)
    logits = torch.bmm(torch.nn.functional.normalize(pred, dim=-1),
                       torch.nn.functional.normalize(target, dim=-1).transpose(1, 2))
    expected = (logits.argmax(-1) == torch.arange(9))[mask].float().mean()
    assert torch.equal(acc, expected)


def test_masked_rows_selected_without_a_data_dependent_size():
    """On the meta device no value is known: any selection whose size depends on the mask
    (``logits[mask]``, ``nonzero``) fails there. The head's shapes follow (B, L) alone."""
    B, L, C = 3, 16, 8
    pred = torch.empty(B, L, C, device='meta')
    mask = torch.empty(B, L, dtype=torch.bool, device='meta')
    logits, labels = ConMIMHead().logits_and_labels(pred, pred, mask)
    assert logits.shape == (B * L, L) and labels.shape == (B * L, )
    with pytest.raises(Exception):  # what the old head did
        torch.empty(B, L, L, device='meta')[mask]


def test_head_loss_compiles_as_one_graph_with_varying_masked_counts():
    torch._dynamo.reset()
    head = ConMIMHead()
    compiled = torch.compile(head.loss_and_accuracy, fullgraph=True, backend='eager',
                             dynamic=False)
    torch.manual_seed(0)
    pred, target = torch.randn(2, 16, 8), torch.randn(2, 16, 8)
    for ratio in (0.2, 0.6):  # a different number of masked patches each call
        mask = torch.rand(2, 16) < ratio
        mask[:, 0] = True
        loss, acc = compiled(pred, target, mask)
        want_loss, want_acc = head.loss_and_accuracy(pred, target, mask)
        assert torch.equal(loss, want_loss) and torch.equal(acc, want_acc)


def test_excluded_negatives_leave_the_softmax():
    """An excluded teacher patch is no negative: the loss is the reference over the others,
    and the positive itself can never be excluded."""
    torch.manual_seed(1)
    B, L, C = 2, 9, 5
    pred = torch.randn(B, L, C, dtype=torch.float64)
    target = torch.randn(B, L, C, dtype=torch.float64)
    mask = torch.zeros(B, L, dtype=torch.bool)
    mask[0, 2] = mask[1, 4] = True
    excluded = torch.zeros(B, L, L, dtype=torch.bool)
    excluded[0, 2, [5, 7]] = True
    excluded[1, 4, 4] = True  # the diagonal: ignored
    head = ConMIMHead()
    loss = head.loss_and_accuracy(pred, target, mask, excluded)[0]

    def row(b, i, keep):
        q = pred[b, i] / pred[b, i].norm()
        sims = {j: float(q @ (target[b, j] / target[b, j].norm())) / 0.1 for j in keep}
        return math.log(sum(math.exp(s) for s in sims.values())) - sims[i]
    expected = (row(0, 2, [j for j in range(L) if j not in (5, 7)]) + row(1, 4, range(L))) / 2
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    assert head.loss_and_accuracy(pred, target, mask, None)[0] != pytest.approx(expected)
