"""`python -m models.tfds_street_scenes --data_dir DIR`: prepares the dataset."""

from models.tfds_street_scenes.prepare import main

if __name__ == "__main__":
    main()
