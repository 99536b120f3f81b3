"""`python -m keras_sknet`: the model zoo's sizes beside the paper's."""

from keras_sknet.applications.zoo import main

if __name__ == "__main__":
    main()
