from flexplat.cli import main

main()
