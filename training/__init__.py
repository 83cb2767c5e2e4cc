"""Training and evaluation on the data wdtk made.

push.py                     `wdtk push`: the Hub dataset (its card is report/card.py)
sft.py templates.py         the SFT script and the chat templates that mask all but assistant turns
rl.py dapo.py rollout.py    the DAPO script, dynamic sampling, multi-turn tool rollouts; rewards.py
evaluate.py benchmarks.py   `wdtk eval`: Pass@1, Pass@k, Cons@k on GAIA, WebWalkerQA, BrowseComp
evolve.py                   `wdtk evolve`: rounds of sample -> funnel -> train -> eval
"""
