"""Proxy quality: byte-level LM training of a design on a local corpus (`evaluator: proxy`)."""

from workers.proxy.corpus import Corpus
from workers.proxy.corpus import load_corpus
from workers.proxy.train import ProxyResult
from workers.proxy.train import ProxySettings
from workers.proxy.train import train_proxy

__all__ = ["Corpus", "ProxyResult", "ProxySettings", "load_corpus", "train_proxy"]
