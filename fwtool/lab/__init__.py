"""Board farms on labgrid (``pip install 'fwtool[labgrid]'``): a flash driver for labgrid (driver.py, registered
for env files by plugin.py), places from fwtool's side (places.py), flashing and reading a place's board
(boards.py), fleet validation (fleet.py) and a hardware-free lab of virtual boards (virtual.py).

labgrid is imported lazily: nothing here loads it until a labgrid feature is used.
"""
