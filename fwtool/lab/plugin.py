"""For labgrid env files: ``imports: [fwtool.lab.plugin]`` registers ``FwtoolFlashDriver`` (fwtool.lab.driver).

Importing this module imports labgrid; fwtool itself never imports it.
"""
from fwtool.lab.driver import register

FwtoolFlashDriver = register()
