"""The gate report written into the output directory of every gated run."""
