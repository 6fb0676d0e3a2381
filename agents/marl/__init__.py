"""Several agents learning together: IQL, VDN, QMIX and DFAC's DDN and DMIX (arXiv 2102.07936).

``agents.marl.agent`` holds the five learners (one code path, differing in their mixer),
``agents.marl.matrix_game`` the paper's two-step game, ``agents.marl.train`` the training driver
behind ``driveenv train dmix|ddn|qmix|vdn|iql --agents N``.
"""

MARL_ALGORITHMS = ("iql", "vdn", "qmix", "ddn", "dmix")
