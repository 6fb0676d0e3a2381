"""The model library agents build on: diffusion, normalizing flows (EBFlow), score matching (DSM, SSM, QCSGM, DLSM). No simulator imports."""
