"""Places and networks: the countries a luxury group sells in, their cities and time zones, and
the IP networks (consumer ISPs, corporate egress, clouds, VPN/hosting providers) traffic comes from.

Address blocks and AS numbers are plausible for each provider but illustrative: the simulator only
needs realistic shapes (public IPv4 addresses, an AS number and organisation, a geolocation), not a
faithful Internet registry.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class City:
    """A city with its region, a postal code, coordinates and time-zone rule."""

    name: str
    state: str
    postal: str
    lat: float
    lon: float
    country: str
    tz_rule: str
    tz_minutes: int


@dataclass(frozen=True)
class Network:
    """An IPv4 block announced by one autonomous system, located in ``city``."""

    cidr: str
    asn: int
    as_org: str
    isp: str
    domain: str
    city: City
    kind: str  # "isp", "cloud", "hosting", "vpn", "tor", "salesforce"

    @property
    def base(self) -> int:
        """First address of the block as an integer."""
        return int(ipaddress.IPv4Network(self.cidr).network_address)

    @property
    def size(self) -> int:
        """Number of addresses in the block."""
        return ipaddress.IPv4Network(self.cidr).num_addresses


@dataclass(frozen=True)
class Country:
    """A market: its language, phone number template (``X`` = random digit), e-mail providers,
    cities (the first is the flagship) and consumer ISPs."""

    code: str
    name: str
    language: str
    phone: str
    email_domains: tuple[str, ...]
    cities: tuple[City, ...]
    weight: float


def _c(name: str, state: str, postal: str, lat: float, lon: float, cc: str, rule: str, minutes: int) -> City:
    return City(name, state, postal, lat, lon, cc, rule, minutes)


PARIS = _c("Paris", "Ile-de-France", "75008", 48.8698, 2.3075, "FR", "EU", 60)
CANNES = _c("Cannes", "Provence-Alpes-Cote d'Azur", "06400", 43.5513, 7.0128, "FR", "EU", 60)
LYON = _c("Lyon", "Auvergne-Rhone-Alpes", "69002", 45.7578, 4.8320, "FR", "EU", 60)
MILAN = _c("Milan", "Lombardy", "20121", 45.4685, 9.1954, "IT", "EU", 60)
ROME = _c("Rome", "Lazio", "00187", 41.9055, 12.4823, "IT", "EU", 60)
FLORENCE = _c("Florence", "Tuscany", "50123", 43.7714, 11.2542, "IT", "EU", 60)
LONDON = _c("London", "England", "W1S 1", 51.5112, -0.1427, "GB", "EU", 0)
MANCHESTER = _c("Manchester", "England", "M2 4", 53.4808, -2.2426, "GB", "EU", 0)
MUNICH = _c("Munich", "Bavaria", "80539", 48.1391, 11.5802, "DE", "EU", 60)
BERLIN = _c("Berlin", "Berlin", "10117", 52.5200, 13.4050, "DE", "EU", 60)
FRANKFURT = _c("Frankfurt am Main", "Hesse", "60313", 50.1109, 8.6821, "DE", "EU", 60)
MADRID = _c("Madrid", "Madrid", "28001", 40.4256, -3.6880, "ES", "EU", 60)
BARCELONA = _c("Barcelona", "Catalonia", "08008", 41.3917, 2.1649, "ES", "EU", 60)
NEW_YORK = _c("New York", "New York", "10022", 40.7625, -73.9735, "US", "US", -300)
MIAMI = _c("Miami", "Florida", "33131", 25.7617, -80.1918, "US", "US", -300)
LOS_ANGELES = _c("Los Angeles", "California", "90210", 34.0696, -118.4053, "US", "US", -480)
ASHBURN = _c("Ashburn", "Virginia", "20147", 39.0438, -77.4874, "US", "US", -300)
TOKYO = _c("Tokyo", "Tokyo", "104-0061", 35.6717, 139.7650, "JP", "none", 540)
OSAKA = _c("Osaka", "Osaka", "542-0085", 34.6723, 135.5016, "JP", "none", 540)
SHANGHAI = _c("Shanghai", "Shanghai", "200040", 31.2304, 121.4737, "CN", "none", 480)
BEIJING = _c("Beijing", "Beijing", "100006", 39.9042, 116.4074, "CN", "none", 480)
HONG_KONG = _c("Hong Kong", "Central and Western", "999077", 22.2810, 114.1588, "HK", "none", 480)
SEOUL = _c("Seoul", "Seoul", "06011", 37.5240, 127.0226, "KR", "none", 540)
DUBAI = _c("Dubai", "Dubai", "00000", 25.1972, 55.2744, "AE", "none", 240)
AMSTERDAM = _c("Amsterdam", "North Holland", "1012", 52.3676, 4.9041, "NL", "EU", 60)
STOCKHOLM = _c("Stockholm", "Stockholm County", "111 20", 59.3293, 18.0686, "SE", "EU", 60)
ZURICH = _c("Zurich", "Zurich", "8001", 47.3769, 8.5417, "CH", "EU", 60)
BUCHAREST = _c("Bucharest", "Bucharest", "010011", 44.4268, 26.1025, "RO", "EU", 120)
SAO_PAULO = _c("Sao Paulo", "Sao Paulo", "01310", -23.5505, -46.6333, "BR", "none", -180)
MUMBAI = _c("Mumbai", "Maharashtra", "400001", 19.0760, 72.8777, "IN", "none", 330)
HANOI = _c("Hanoi", "Hanoi", "100000", 21.0278, 105.8342, "VN", "none", 420)
JAKARTA = _c("Jakarta", "Jakarta", "10110", -6.2088, 106.8456, "ID", "none", 420)
SINGAPORE = _c("Singapore", "Singapore", "018956", 1.2800, 103.8500, "SG", "none", 480)
MOSCOW = _c("Moscow", "Moscow", "101000", 55.7558, 37.6173, "RU", "EU", 180)

COUNTRIES: tuple[Country, ...] = (
    Country("FR", "France", "fr", "+33 6 XX XX XX XX", ("gmail.com", "orange.fr", "free.fr", "wanadoo.fr"),
            (PARIS, CANNES, LYON), 0.17),
    Country("IT", "Italy", "it", "+39 3XX XXX XXXX", ("gmail.com", "libero.it", "tiscali.it", "virgilio.it"),
            (MILAN, ROME, FLORENCE), 0.12),
    Country("GB", "United Kingdom", "en", "+44 7XXX XXXXXX", ("gmail.com", "btinternet.com", "outlook.com"),
            (LONDON, MANCHESTER), 0.09),
    Country("DE", "Germany", "de", "+49 15X XXXXXXXX", ("gmail.com", "gmx.de", "web.de", "t-online.de"),
            (MUNICH, BERLIN), 0.06),
    Country("ES", "Spain", "es", "+34 6XX XX XX XX", ("gmail.com", "hotmail.es", "telefonica.net"),
            (MADRID, BARCELONA), 0.04),
    Country("US", "United States", "en", "+1 XXX-XXX-XXXX", ("gmail.com", "yahoo.com", "icloud.com", "outlook.com"),
            (NEW_YORK, LOS_ANGELES, MIAMI), 0.20),
    Country("JP", "Japan", "ja", "+81 90-XXXX-XXXX", ("gmail.com", "yahoo.co.jp", "docomo.ne.jp", "icloud.com"),
            (TOKYO, OSAKA), 0.10),
    Country("CN", "China", "zh", "+86 13X XXXX XXXX", ("qq.com", "163.com", "126.com", "gmail.com"),
            (SHANGHAI, BEIJING), 0.12),
    Country("HK", "Hong Kong", "zh", "+852 XXXX XXXX", ("gmail.com", "netvigator.com", "yahoo.com.hk"),
            (HONG_KONG,), 0.04),
    Country("KR", "South Korea", "ko", "+82 10-XXXX-XXXX", ("naver.com", "gmail.com", "daum.net"), (SEOUL,), 0.04),
    Country("AE", "United Arab Emirates", "ar", "+971 5X XXX XXXX", ("gmail.com", "outlook.com", "eim.ae"),
            (DUBAI,), 0.02),
)

COUNTRY_BY_CODE = {c.code: c for c in COUNTRIES}
COUNTRY_NAMES = {
    **{c.code: c.name for c in COUNTRIES},
    "NL": "Netherlands", "SE": "Sweden", "CH": "Switzerland", "RO": "Romania", "BR": "Brazil", "IN": "India",
    "VN": "Vietnam", "ID": "Indonesia", "SG": "Singapore", "RU": "Russia",
}

_N = Network
ISPS: dict[str, tuple[Network, ...]] = {
    "FR": (_N("90.0.0.0/10", 3215, "Orange", "Orange S.A.", "orange.fr", PARIS, "isp"),
           _N("78.192.0.0/10", 12322, "Free SAS", "Free SAS", "free.fr", PARIS, "isp"),
           _N("109.8.0.0/13", 15557, "SFR SA", "SFR", "sfr.fr", LYON, "isp")),
    "IT": (_N("79.0.0.0/11", 3269, "Telecom Italia S.p.A.", "TIM", "telecomitalia.it", MILAN, "isp"),
           _N("151.64.0.0/11", 1267, "Wind Tre S.p.A.", "Wind Tre", "windtre.it", ROME, "isp")),
    "GB": (_N("86.128.0.0/10", 2856, "British Telecommunications PLC", "BT", "bt.com", LONDON, "isp"),
           _N("82.0.0.0/11", 5089, "Virgin Media Limited", "Virgin Media", "virginmedia.com", MANCHESTER, "isp")),
    "DE": (_N("79.192.0.0/10", 3320, "Deutsche Telekom AG", "Deutsche Telekom", "telekom.de", MUNICH, "isp"),
           _N("88.64.0.0/12", 3209, "Vodafone GmbH", "Vodafone Germany", "vodafone.de", BERLIN, "isp")),
    "ES": (_N("83.32.0.0/11", 3352, "Telefonica de Espana S.A.U.", "Movistar", "telefonica.es", MADRID, "isp"),),
    "US": (_N("73.0.0.0/8", 7922, "Comcast Cable Communications, LLC", "Comcast", "comcast.net", NEW_YORK, "isp"),
           _N("71.160.0.0/11", 701, "Verizon Business", "Verizon", "verizon.net", NEW_YORK, "isp"),
           _N("76.160.0.0/11", 20115, "Charter Communications", "Spectrum", "charter.com", LOS_ANGELES, "isp")),
    "JP": (_N("126.0.0.0/8", 17676, "SoftBank Corp.", "SoftBank", "softbank.jp", TOKYO, "isp"),
           _N("153.128.0.0/10", 4713, "NTT Communications Corporation", "OCN", "ocn.ne.jp", OSAKA, "isp")),
    "CN": (_N("116.224.0.0/12", 4812, "China Telecom (Group)", "China Telecom", "chinatelecom.com.cn", SHANGHAI, "isp"),
           _N("123.112.0.0/12", 4808, "China Unicom Beijing", "China Unicom", "chinaunicom.com", BEIJING, "isp")),
    "HK": (_N("112.118.0.0/15", 4760, "HKT Limited", "Netvigator", "netvigator.com", HONG_KONG, "isp"),),
    "KR": (_N("175.192.0.0/10", 4766, "Korea Telecom", "KT", "kt.com", SEOUL, "isp"),),
    "AE": (_N("94.200.0.0/13", 5384, "Emirates Telecommunications Group", "Etisalat", "etisalat.ae", DUBAI, "isp"),),
    "BR": (_N("177.0.0.0/11", 26599, "Telefonica Brasil S.A", "Vivo", "vivo.com.br", SAO_PAULO, "isp"),),
    "IN": (_N("49.32.0.0/11", 55836, "Reliance Jio Infocomm Limited", "Jio", "jio.com", MUMBAI, "isp"),),
    "VN": (_N("113.160.0.0/11", 45899, "VNPT Corp", "VNPT", "vnpt.vn", HANOI, "isp"),),
    "ID": (_N("36.64.0.0/11", 7713, "PT Telekomunikasi Indonesia", "Telkom Indonesia", "telkom.co.id", JAKARTA, "isp"),),
    "RO": (_N("86.120.0.0/13", 8708, "RCS & RDS SA", "Digi", "rcs-rds.ro", BUCHAREST, "isp"),),
    "RU": (_N("95.24.0.0/13", 8402, "PJSC Vimpelcom", "Beeline", "beeline.ru", MOSCOW, "isp"),),
}

CLOUDS: tuple[Network, ...] = (
    _N("15.236.0.0/15", 16509, "Amazon.com, Inc.", "Amazon Technologies Inc.", "amazon.com", PARIS, "cloud"),
    _N("3.208.0.0/12", 14618, "Amazon.com, Inc.", "Amazon.com Inc.", "amazonaws.com", ASHBURN, "cloud"),
    _N("34.64.0.0/10", 396982, "Google LLC", "Google Cloud", "google.com", FRANKFURT, "cloud"),
    _N("20.36.0.0/14", 8075, "Microsoft Corporation", "Microsoft Azure", "microsoft.com", AMSTERDAM, "cloud"),
)

SALESFORCE = _N("96.43.144.0/20", 14340, "Salesforce.com, Inc.", "Salesforce.com", "salesforce.com", ASHBURN, "salesforce")

HOSTING: tuple[Network, ...] = (
    _N("146.70.0.0/16", 9009, "M247 Europe SRL", "M247 Ltd", "m247.com", AMSTERDAM, "vpn"),
    _N("89.187.160.0/19", 60068, "Datacamp Limited", "CDN77", "datacamp.co.uk", FRANKFURT, "vpn"),
    _N("193.138.218.0/24", 39351, "31173 Services AB", "31173 Services AB", "31173.se", STOCKHOLM, "vpn"),
    _N("159.89.0.0/16", 14061, "DigitalOcean, LLC", "DigitalOcean", "digitalocean.com", FRANKFURT, "hosting"),
    _N("51.68.0.0/16", 16276, "OVH SAS", "OVH SAS", "ovh.net", PARIS, "hosting"),
    _N("95.216.0.0/16", 24940, "Hetzner Online GmbH", "Hetzner Online", "hetzner.com", FRANKFURT, "hosting"),
    _N("45.32.0.0/16", 20473, "The Constant Company, LLC", "Vultr Holdings", "vultr.com", LOS_ANGELES, "hosting"),
    _N("172.104.0.0/15", 63949, "Akamai Connected Cloud", "Linode", "linode.com", SINGAPORE, "hosting"),
    _N("185.220.100.0/22", 60729, "Stiftung Erneuerbare Freiheit", "Tor exit relay", "torproject.org", ZURICH, "tor"),
    _N("3.208.0.0/12", 14618, "Amazon.com, Inc.", "Amazon.com Inc.", "amazonaws.com", ASHBURN, "cloud"),
)
"""Where attackers connect from: VPN exits, rented servers, Tor, and sometimes a public cloud."""

RESIDENTIAL_PROXY_COUNTRIES = ("BR", "IN", "VN", "ID", "RO", "RU", "US", "DE", "FR", "GB")
"""Countries whose consumer ISPs relay credential-stuffing traffic (residential proxy networks)."""


def random_ips(rng: np.random.Generator, network: Network, n: int) -> list[str]:
    """``n`` random host addresses inside ``network`` (never the .0 or .255 of a /24)."""
    span = max(network.size // 256, 1)
    blocks = rng.integers(0, span, n)
    hosts = rng.integers(1, 255 if network.size >= 256 else network.size - 1, n)
    values = network.base + blocks * 256 + hosts
    return [str(ipaddress.IPv4Address(int(v))) for v in values]
