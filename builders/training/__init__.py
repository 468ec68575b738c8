"""Training runs for the embedded dataset: small causal LMs trained from scratch on the offline
corpora (text held out from the mini text set), checkpoints at Pythia-like steps, several seeds;
and a brief fine-tune of SmolLM2 on one domain. Needs the [build] extra."""
