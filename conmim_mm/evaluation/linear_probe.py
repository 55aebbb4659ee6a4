"""A linear probe on frozen features."""
import torch
import torch.nn.functional as F


def linear_probe(train_x: torch.Tensor, train_y: torch.Tensor, test_x: torch.Tensor,
                 test_y: torch.Tensor, weight_decay: float = 1e-4, steps: int = 150) -> float:
    """Top-1 (%) of a multinomial logistic regression on standardised frozen features
    (full-batch L-BFGS with strong-Wolfe line search, L2 ``weight_decay`` on the weights,
    seeded: the same features give the same number)."""
    mean, std = train_x.mean(0), train_x.std(0) + 1e-6
    train_x, test_x = (train_x - mean) / std, (test_x - mean) / std
    torch.manual_seed(0)
    linear = torch.nn.Linear(train_x.shape[1], int(train_y.max()) + 1)
    opt = torch.optim.LBFGS(linear.parameters(), lr=1, max_iter=steps, history_size=20,
                            line_search_fn='strong_wolfe')

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(linear(train_x), train_y) + \
            weight_decay * linear.weight.pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        return 100.0 * (linear(test_x).argmax(1) == test_y).float().mean().item()
