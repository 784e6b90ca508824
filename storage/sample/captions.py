"""Photos bundled in PyPI wheels, their licences and human-written captions for the sample data."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SamplePhoto:
    """One photo shipped in a PyPI wheel.

    Attributes:
        name: Short stable name, e.g. ``"astronaut"``.
        package: Importable package that ships the file (``"skimage"``, ``"sklearn"``, ``"matplotlib"``).
        relpath: Path of the file relative to that package's directory (matplotlib: relative to
            ``matplotlib.get_data_path()``).
        source: Where the photo comes from, as its package documents it.
        licence: Its licence, as its package documents it (with attribution where required).
        grayscale: Whether the file is a single-channel image.
        captions: Five or more captions describing the photo.
    """

    name: str
    package: str
    relpath: str
    source: str
    licence: str
    grayscale: bool
    captions: tuple[str, ...]


_SKLEARN_CC_BY = "Released under a creative commons license (https://creativecommons.org/licenses/by/2.0/)."

PHOTOS: tuple[SamplePhoto, ...] = (
    SamplePhoto(
        name="astronaut",
        package="skimage",
        relpath="data/astronaut.png",
        source=(
            "Photograph of Eileen Collins, an American astronaut, downloaded from "
            "the NASA Great Images database (https://flic.kr/p/r9qvLn)."
        ),
        licence="No known copyright restrictions, released into the public domain.",
        grayscale=False,
        captions=(
            "A smiling woman in an orange space suit poses beside an American flag.",
            "An astronaut in an orange flight suit sits for an official portrait.",
            "A female astronaut smiles with a shiny black helmet resting beside her.",
            "A model of the space shuttle stands behind a smiling astronaut in orange.",
            "Official portrait of an astronaut wearing an orange pressure suit and patch.",
            "A short-haired woman in a space suit smiles in front of a gray backdrop.",
            "An astronaut poses between the United States flag and a space shuttle model.",
        ),
    ),
    SamplePhoto(
        name="brick",
        package="skimage",
        relpath="data/brick.png",
        source=(
            "Brick wall downloaded from CC0Textures "
            "(https://cc0textures.com/view.php?tex=Bricks25); a perspective transform "
            "was applied, then it was rotated by 90 degrees, cropped and scaled."
        ),
        licence="Creative Commons CC0 License.",
        grayscale=True,
        captions=(
            "A gray brick wall with long rectangular bricks in neat rows.",
            "A close up of a brick surface seen at a slight angle.",
            "Rows of narrow bricks separated by thin light mortar lines.",
            "A black and white photo of a brick pattern running vertically.",
            "Long thin bricks laid in staggered rows form a textured wall.",
        ),
    ),
    SamplePhoto(
        name="camera",
        package="skimage",
        relpath="data/camera.png",
        source='Gray-level "camera" image, photographed by Lav Varshney.',
        licence="No copyright restrictions. CC0 by the photographer (Lav Varshney).",
        grayscale=True,
        captions=(
            "A black and white photo of a man using a camera on a tripod.",
            "A man in a dark coat looks through a camera set on a tripod.",
            "A photographer stands in a grassy field filming with a video camera.",
            "A man bends over a tripod mounted camera with buildings in the distance.",
            "A grayscale image of a person operating a camera in an open field.",
        ),
    ),
    SamplePhoto(
        name="chelsea",
        package="skimage",
        relpath="data/chelsea.png",
        source="Chelsea the cat, photographed by Stefan van der Walt.",
        licence="No copyright restrictions. CC0 by the photographer (Stefan van der Walt).",
        grayscale=False,
        captions=(
            "A close up of a tabby cat with bright green eyes.",
            "A brown striped cat stares off to the side with wide eyes.",
            "The face of a tabby cat with a pink nose and long white whiskers.",
            "A tabby cat gazes past the camera with a calm, almost blasé expression.",
            "A cat's face fills the frame in front of a blurry indoor background.",
        ),
    ),
    SamplePhoto(
        name="china",
        package="sklearn",
        relpath="datasets/images/china.jpg",
        source=(
            "Retrieved 21st August, 2011 from "
            "https://www.flickr.com/photos/danielbuechele/6061409035/sizes/z/in/photostream/ "
            "by Robert Layton."
        ),
        licence=(
            f"{_SKLEARN_CC_BY} Attribution: Some rights reserved by danielbuechele "
            "(https://www.flickr.com/photos/danielbuechele/)."
        ),
        grayscale=False,
        captions=(
            "A tall ornate Chinese pagoda overlooks a large lake on a hazy day.",
            "A colorful multi-tiered tower with curved roofs rises above green trees.",
            "A traditional Chinese temple building with a lake and boats behind it.",
            "A red and orange pagoda stands on a hill above a wide lake.",
            "Leafy trees surround an elaborate tower with tiled roofs near the water.",
        ),
    ),
    SamplePhoto(
        name="coffee",
        package="skimage",
        relpath="data/coffee.png",
        source="Coffee cup photograph courtesy of Pikolo Espresso Bar, taken by Rachel Michetti.",
        licence="No copyright restrictions. CC0 by the photographer (Rachel Michetti).",
        grayscale=False,
        captions=(
            "A small cup of espresso sits on a red saucer with a spoon.",
            "A red and white espresso cup rests on a matching saucer on a wooden table.",
            "A shot of espresso with golden crema in a ceramic cup on a saucer.",
            "A metal teaspoon lies on a saucer beside a cup of coffee.",
            "Looking down into a cup of espresso on a rustic wooden tabletop.",
            "A reddish brown coffee cup and saucer on a worn wooden counter.",
        ),
    ),
    SamplePhoto(
        name="coins",
        package="skimage",
        relpath="data/coins.png",
        source=(
            "Greek coins from Pompeii, downloaded from the Brooklyn Museum Collection "
            "(https://www.brooklynmuseum.org/opencollection/archives/image/51611)."
        ),
        licence="No known copyright restrictions.",
        grayscale=True,
        captions=(
            "Rows of old coins laid out on a dark background.",
            "A black and white photo of ancient coins arranged in a grid.",
            "Twenty four old coins stamped with heads and figures lined up in rows.",
            "A collection of ancient Greek coins displayed in neat rows.",
            "Several worn coins showing profiles of heads sit in four rows.",
        ),
    ),
    SamplePhoto(
        name="flower",
        package="sklearn",
        relpath="datasets/images/flower.jpg",
        source=(
            "Retrieved 21st August, 2011 from "
            "https://www.flickr.com/photos/vultilion/6056698931/sizes/z/in/photostream/ "
            "by Robert Layton."
        ),
        licence=(
            f"{_SKLEARN_CC_BY} Attribution: Some rights reserved by danielbuechele "
            "(https://www.flickr.com/photos/vultilion/)."
        ),
        grayscale=False,
        captions=(
            "A round orange dahlia in bloom in front of dark green leaves.",
            "A close up of a peach colored flower shaped like a ball.",
            "An orange flower with neatly curled petals against a blurry background.",
            "A single pompon dahlia stands out from the dark foliage behind it.",
            "A pale orange flower with another bloom just visible below it.",
        ),
    ),
    SamplePhoto(
        name="grace_hopper",
        package="matplotlib",
        relpath="sample_data/grace_hopper.jpg",
        source=(
            "Not documented by matplotlib; its sample_data/README.txt only says the "
            "files are sample data for its examples and docs."
        ),
        licence="Not stated by matplotlib.",
        grayscale=False,
        captions=(
            "An elderly woman in a navy uniform poses in front of an American flag.",
            "An older woman wearing glasses and a dark officer's cap smiles slightly.",
            "A portrait of a woman in a military uniform with ribbons on her chest.",
            "A gray haired woman in a dark uniform poses before a blue backdrop.",
            "An official portrait of a naval officer with a flag behind her.",
        ),
    ),
    SamplePhoto(
        name="grass",
        package="skimage",
        relpath="data/grass.png",
        source=(
            "Grass downloaded from DeviantArt "
            "(https://www.deviantart.com/linolafett/art/Grass-01-434853879); a "
            "(512, 512) region around the top left corner was cropped and converted "
            "to grayscale."
        ),
        licence="Creative Commons CC0 License.",
        grayscale=True,
        captions=(
            "A close up of grass and small leaves covering the ground.",
            "A black and white photo of a patch of dense grass.",
            "Thin blades of grass mixed with tiny clover leaves.",
            "A top down view of a lawn with grass and weeds.",
            "Short grass blades tangled together in a grayscale texture image.",
        ),
    ),
    SamplePhoto(
        name="horse",
        package="skimage",
        relpath="data/horse.png",
        source=(
            "Black and white silhouette of a horse, downloaded from openclipart "
            "(http://openclipart.org/detail/158377/horse-by-marauder)."
        ),
        licence="No copyright restrictions. CC0 given by owner (Andreas Preuss (marauder)).",
        grayscale=False,
        captions=(
            "A black silhouette of a horse standing against a plain background.",
            "The dark outline of a horse facing right with its tail hanging down.",
            "A simple black shape of a standing horse seen from the side.",
            "A solid black horse silhouette with its head raised and ears up.",
            "A clip art style silhouette of a horse shown in profile.",
        ),
    ),
    SamplePhoto(
        name="hubble_deep_field",
        package="skimage",
        relpath="data/hubble_deep_field.jpg",
        source=(
            "Hubble eXtreme Deep Field, downloaded from HubbleSite "
            "(http://hubblesite.org/newscenter/archive/releases/2012/37/image/a/)."
        ),
        licence=(
            "The image was captured by NASA and may be freely used in the public domain "
            "(http://www.nasa.gov/audience/formedia/features/MP_Photo_Guidelines.html)."
        ),
        grayscale=False,
        captions=(
            "Countless distant galaxies are scattered across a black patch of space.",
            "A deep space image filled with colorful galaxies of many shapes and sizes.",
            "Tiny spiral and elliptical galaxies glow against the darkness of space.",
            "A telescope view of the sky crowded with faint red and blue galaxies.",
            "Hundreds of small glowing galaxies dot a dark background in this photo.",
        ),
    ),
    SamplePhoto(
        name="immunohistochemistry",
        package="skimage",
        relpath="data/ihc.png",
        source=(
            "Immunohistochemical (IHC) staining with hematoxylin counterstaining of "
            "colonic glands, acquired at the Center for Microscopy And Molecular "
            "Imaging (CMMI)."
        ),
        licence="No known copyright restrictions.",
        grayscale=False,
        captions=(
            "A microscope image of body tissue stained brown and blue.",
            "Brown stained glands surrounded by pale tissue with blue nuclei.",
            "A close up of colon tissue with rounded glands stained brown.",
            "Stained cells form curved brown bands against a light blue background.",
            "A histology slide showing glandular tissue with brown and blue staining.",
        ),
    ),
    SamplePhoto(
        name="moon",
        package="skimage",
        relpath="data/moon.png",
        source="Surface of the moon; scikit-image gives no further source.",
        licence="Not stated by scikit-image.",
        grayscale=True,
        captions=(
            "A gray close up of the surface of the moon with small craters.",
            "A black and white image of a cratered lunar landscape.",
            "Small craters and faint ridges scattered across a dusty gray surface.",
            "A low contrast photo of the rocky surface of the moon.",
        ),
    ),
    SamplePhoto(
        name="motorcycle",
        package="skimage",
        relpath="data/motorcycle_left.png",
        source=(
            "Left image of a rectified stereo pair from the Middlebury 2014 stereo "
            "benchmark (http://vision.middlebury.edu/stereo/data/scenes2014/), created "
            "by Nera Nesic, Porter Westling, Xi Wang, York Kitajima, Greg Krathwohl, "
            "and Daniel Scharstein at Middlebury College; down-sampled by a factor of 4."
        ),
        licence="Not stated by scikit-image.",
        grayscale=False,
        captions=(
            "A red motorcycle is parked on a concrete floor inside a garage.",
            "A red Yamaha motorcycle is propped on its stand in a workshop.",
            "An old red motorbike with a black seat parked next to a wooden bench.",
            "A red motorcycle in front of metal shelves stacked with boxes and supplies.",
            "A classic motorcycle with chrome details sits in a cluttered storage room.",
        ),
    ),
    SamplePhoto(
        name="retina",
        package="skimage",
        relpath="data/retina.jpg",
        source=(
            "Human retina, downloaded from wikimedia "
            "(https://commons.wikimedia.org/wiki/File:Fundus_photograph_of_normal_left_eye.jpg)."
        ),
        licence=("This file is made available under the Creative Commons CC0 1.0 Universal Public Domain Dedication."),
        grayscale=False,
        captions=(
            "A photograph of the inside of a human eye showing red blood vessels.",
            "An orange red retina with branching blood vessels inside a black circle.",
            "A medical image of the back of an eye with a bright optic disc.",
            "Blood vessels spread across the retina from a pale spot on the left.",
            "A round fundus photograph of a healthy eye on a black background.",
        ),
    ),
    SamplePhoto(
        name="rocket",
        package="skimage",
        relpath="data/rocket.jpg",
        source=(
            "Launch photo of DSCOVR on Falcon 9 by SpaceX at Launch Complex 40, Cape "
            "Canaveral Air Force Station, FL, downloaded from SpaceX Photos "
            "(https://www.flickr.com/photos/spacexphotos/16511594820/in/photostream/)."
        ),
        licence=(
            "The image was captured by SpaceX and released in the public domain "
            "(http://arstechnica.com/tech-policy/2015/03/"
            "elon-musk-puts-spacex-photos-into-the-public-domain/)."
        ),
        grayscale=False,
        captions=(
            "A white rocket stands on a launch pad between tall steel towers at dusk.",
            "A rocket waits for launch under a deep blue evening sky.",
            "Bright lights glow around the base of a rocket on its launch pad.",
            "Four lattice towers surround a tall white rocket ready for liftoff.",
            "A tall slender rocket lit up against the twilight sky at a launch site.",
        ),
    ),
)
