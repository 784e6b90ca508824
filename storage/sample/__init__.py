"""Offline sample datasets in the real COCO and Flickr8k layouts."""
