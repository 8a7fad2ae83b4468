"""engine/optim.py: fused AdamW steps like the per-tensor loop."""
import torch

from engine.optim import adamw


def test_fused_adamw_matches_the_loop():
    torch.manual_seed(0)
    make = lambda: torch.nn.Sequential(torch.nn.Linear(30, 16), torch.nn.GELU(), torch.nn.Linear(16, 4))  # noqa: E731
    a = make()
    b = make()
    b.load_state_dict(a.state_dict())
    fused = adamw(a.parameters(), 1e-2, 1e-3, torch.device("cpu"))
    loop = torch.optim.AdamW(b.parameters(), lr=1e-2, weight_decay=1e-3, foreach=False)
    assert fused.defaults["fused"]
    x, y = torch.randn(64, 30), torch.randint(0, 4, (64,))
    for _ in range(20):
        for model, opt in ((a, fused), (b, loop)):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
    for p, q in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)
