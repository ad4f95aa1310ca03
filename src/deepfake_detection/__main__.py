from deepfake_detection.cli import main

if __name__ == "__main__":
    main(prog_name="deepfake-detection")
