"""The DALI pretraining loader: ``two_view.DaliTwoViewLoader`` decodes with NVIDIA DALI and makes a batch's views in
one ``fused_augment`` call; ``common`` holds the up-front folder check and the DALI-to-torch copies. Importing these
modules does not import DALI; building a loader does (``common.import_dali`` names the install command)."""
