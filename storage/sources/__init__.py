"""Dataset sources: parsers for the public COCO/SpokenCOCO/Karpathy and Flickr8k/Flickr-Audio layouts."""
