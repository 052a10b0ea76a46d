from olmo2_lit.cli import main

main()
