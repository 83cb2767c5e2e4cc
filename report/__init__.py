"""What a run made and how good it is: the report, the audit and the dataset card (`wdtk report`, `wdtk audit`).

gather.py    reads every stage's outputs in a run directory into figures
html.py      renders the figures as one self-contained page; charts.py its SVG charts and tables
card.py      the Hub dataset card
audit.py     `wdtk audit`: a run on the generated site judged by its ground truth (verdicts.py, truth.py)
"""
