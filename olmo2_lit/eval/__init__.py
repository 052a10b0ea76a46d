"""What a model tells you: generation from the command line, downstream evaluation by ranked
classification (OLMo's in-loop tasks) and the tokenizer lookup they share."""
