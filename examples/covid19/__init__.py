"""COVID-19 healthcare facility allocation: the demonstrator of the paper."""
