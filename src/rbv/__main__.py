from rbv.cli.app import main

main()
