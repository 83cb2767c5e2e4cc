"""What a run made and how good it is: the HTML report and the dataset card (`wdtk report`, `wdtk push`'s card).

gather.py    reads every stage's outputs in a run directory into figures
html.py      renders the figures as one self-contained page; charts.py its SVG charts and tables
card.py      the Hub dataset card
"""
