"""logprobe: can I trust this server's logprobs, and will lm-eval score correctly on it?"""

__version__ = "0.1.0"
