from fwtool.cli import main

main()
