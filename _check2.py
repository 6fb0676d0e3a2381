import numpy as np, sys
import eval.ppi as P
from tests.eval.fakes import paired_outcomes, synthetic_rates
for pseudo in (0.25, 0.35, 0.5):
  P.PSEUDO_DISCORDANT = pseudo
  rng = np.random.default_rng(1)
  out=[]
  for corr in (0.5, 0.8, 0.95):
    for regime in ("unbiased","optimistic","mixed"):
      D, A, n, N = 2000, 4, int(sys.argv[1]), 100
      sim_p, real_p = synthetic_rates(rng, D, A, regime)
      sim, real = paired_outcomes(rng, sim_p, real_p, corr, N, n)
      Y = real.reshape(D*A, 2*n); H = sim[..., :n].reshape(D*A, 2*n); U = sim[..., n:].reshape(D*A, 2*(N-n))
      truth = real_p.mean(-1).reshape(-1)
      e = P.ppi_mean(Y, H, U)
      out.append(f"{corr}/{regime[:3]} {np.mean((e.low<=truth)&(truth<=e.high)):.3f} {np.mean(e.high-e.low):.3f}")
  print(pseudo, " | ".join(out))
