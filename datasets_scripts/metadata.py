"""What each builder's `DatasetInfo` says of its source: citation, license and homepage, in one place (the data
folder's README names the same licenses for the copies CI measures on)."""

JAKET_CITATION = """@inproceedings{yu2022jaket,
  title     = {{JAKET}: Joint Pre-training of Knowledge Graph and Language Understanding},
  author    = {Yu, Donghan and Zhu, Chenguang and Yang, Yiming and Zeng, Michael},
  booktitle = {Proceedings of the AAAI Conference on Artificial Intelligence},
  volume    = {36},
  number    = {10},
  pages     = {11630--11638},
  year      = {2022}
}"""

WORDNET_CITATION = """@book{fellbaum1998wordnet,
  title     = {{WordNet}: An Electronic Lexical Database},
  editor    = {Fellbaum, Christiane},
  publisher = {MIT Press},
  year      = {1998}
}"""

SEMCOR_CITATION = """@inproceedings{miller1993semantic,
  title     = {A Semantic Concordance},
  author    = {Miller, George A. and Leacock, Claudia and Tengi, Randee and Bunker, Ross T.},
  booktitle = {Human Language Technology: Proceedings of a Workshop Held at Plainsboro, New Jersey},
  year      = {1993}
}"""

FEWREL_CITATION = """@inproceedings{han2018fewrel,
  title     = {{FewRel}: A Large-Scale Supervised Few-Shot Relation Classification Dataset with State-of-the-Art
               Evaluation},
  author    = {Han, Xu and Zhu, Hao and Yu, Pengfei and Wang, Ziyun and Yao, Yuan and Liu, Zhiyuan and Sun, Maosong},
  booktitle = {Proceedings of EMNLP},
  year      = {2018}
}"""

METAQA_CITATION = """@inproceedings{zhang2018variational,
  title     = {Variational Reasoning for Question Answering with Knowledge Graph},
  author    = {Zhang, Yuyu and Dai, Hanjun and Kozareva, Zornitsa and Smola, Alexander J. and Song, Le},
  booktitle = {Proceedings of the AAAI Conference on Artificial Intelligence},
  year      = {2018}
}"""

WIKIDATA_CITATION = """@article{vrandecic2014wikidata,
  title   = {Wikidata: A Free Collaborative Knowledgebase},
  author  = {Vrande{\\v{c}}i{\\'c}, Denny and Kr{\\"o}tzsch, Markus},
  journal = {Communications of the ACM},
  volume  = {57},
  number  = {10},
  year    = {2014}
}"""

WORDNET_LICENSE = "WordNet 3.0 license (https://wordnet.princeton.edu/license-and-commercial-use)"
FEWREL_LICENSE = "MIT"
METAQA_LICENSE = "CC BY 3.0"
WIKI_LICENSE = "Wikidata: CC0 1.0; Wikipedia text: CC BY-SA 4.0"
USER_LICENSE = "the license of the user's own files"
