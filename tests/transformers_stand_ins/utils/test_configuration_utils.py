# Every argument of PreTrainedConfig.__init__, each set to a value other than its default, as the original module
# does: ConfigTester.check_config_arguments_init passes them to the model's config and reads them back.
config_common_kwargs = {
    "output_hidden_states": True,
    "return_dict": False,
    "dtype": "float16",
    "chunk_size_feed_forward": 5,
    "is_encoder_decoder": True,
    "architectures": ["JaketModel"],
    "id2label": {0: "label"},
    "label2id": {"label": "0"},
    "problem_type": "regression",
}
