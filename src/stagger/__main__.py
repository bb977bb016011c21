from stagger.cli.main import main

main()
