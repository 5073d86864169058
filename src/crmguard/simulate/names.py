"""Small built-in name lists per language, for fake staff and customers (no download needed).

Names are common given names and surnames in each language (East Asian names romanised, as
international CRMs usually store them); streets are typical luxury-shopping streets and generic
street names. Nothing here identifies a real person.
"""

from __future__ import annotations

import unicodedata

FIRST: dict[str, tuple[str, ...]] = {
    "fr": ("Camille", "Louise", "Chloé", "Inès", "Léa", "Manon", "Juliette", "Margaux", "Hélène", "Élodie",
           "Lucas", "Hugo", "Louis", "Gabriel", "Arthur", "Jules", "Théo", "Antoine", "Mathieu", "Étienne",
           "Claire", "Sophie", "Nicolas", "Julien", "Aurélie", "Céline", "Pierre", "Thomas", "Bérénice", "Maxime"),
    "it": ("Giulia", "Francesca", "Chiara", "Sofia", "Martina", "Alessia", "Giorgia", "Elena", "Valentina", "Beatrice",
           "Lorenzo", "Matteo", "Alessandro", "Leonardo", "Francesco", "Andrea", "Riccardo", "Tommaso", "Gabriele",
           "Marco", "Federica", "Luca", "Paolo", "Davide", "Simona", "Roberta", "Stefano", "Niccolò", "Ilaria"),
    "en": ("Olivia", "Amelia", "Isla", "Emily", "Charlotte", "Sophia", "Grace", "Harper", "Ella", "Madison",
           "Oliver", "George", "Harry", "Jack", "Noah", "James", "William", "Henry", "Alexander", "Benjamin",
           "Victoria", "Eleanor", "Daniel", "Michael", "Jessica", "Ashley", "Ryan", "Christopher", "Lauren", "Taylor"),
    "de": ("Anna", "Marie", "Sophie", "Lena", "Hannah", "Lea", "Johanna", "Katharina", "Franziska", "Greta",
           "Maximilian", "Paul", "Felix", "Leon", "Lukas", "Jonas", "Finn", "Moritz", "Sebastian", "Tobias",
           "Jürgen", "Sabine", "Stefan", "Andreas", "Ursula", "Matthias", "Christian", "Annika", "Julia", "Niklas"),
    "es": ("Lucía", "Sofía", "Martina", "María", "Paula", "Valeria", "Carmen", "Elena", "Daniela", "Alba",
           "Hugo", "Mateo", "Martín", "Pablo", "Alejandro", "Daniel", "Álvaro", "Diego", "Javier", "Adrián",
           "Isabel", "Teresa", "Sergio", "Jorge", "Raquel", "Marta", "Iñigo", "Nuria", "Rocío", "Gonzalo"),
    "ja": ("Yui", "Aoi", "Hina", "Sakura", "Yuna", "Mei", "Rin", "Haruka", "Misaki", "Nanami",
           "Haruto", "Sota", "Yuto", "Riku", "Hinata", "Ren", "Kaito", "Takumi", "Daiki", "Kenta",
           "Yuki", "Akiko", "Hiroshi", "Takeshi", "Naoko", "Emi", "Kazuki", "Shota", "Ayaka", "Mariko"),
    "zh": ("Wei", "Fang", "Jing", "Li", "Min", "Yan", "Xiu", "Ying", "Hui", "Lan",
           "Hao", "Jun", "Lei", "Tao", "Qiang", "Ming", "Yong", "Jie", "Chen", "Bo",
           "Mei", "Xin", "Yu", "Zihan", "Yichen", "Ruoxi", "Haoran", "Jiayi", "Zixuan", "Kai"),
    "ko": ("Seo-yeon", "Ji-woo", "Ha-eun", "Seo-yun", "Min-seo", "Ji-min", "Soo-ah", "Ye-jin", "Da-eun", "Yu-na",
           "Min-jun", "Seo-jun", "Do-yun", "Ha-jun", "Ji-ho", "Joon-ho", "Hyun-woo", "Sung-min", "Jae-won", "Tae-yang"),
    "ar": ("Fatima", "Mariam", "Aisha", "Noor", "Layla", "Sara", "Hessa", "Maitha", "Reem", "Shamma",
           "Mohammed", "Ahmed", "Omar", "Khalid", "Rashid", "Saeed", "Hamdan", "Sultan", "Yousef", "Abdullah"),
}

LAST: dict[str, tuple[str, ...]] = {
    "fr": ("Martin", "Bernard", "Dubois", "Thomas", "Robert", "Richard", "Petit", "Durand", "Leroy", "Moreau",
           "Simon", "Laurent", "Lefèvre", "Michel", "Garcia", "David", "Bertrand", "Roux", "Vincent", "Fournier",
           "Morel", "Girard", "André", "Mercier", "Dupont", "Lambert", "Bonnet", "François", "Martinez", "Légaré"),
    "it": ("Rossi", "Russo", "Ferrari", "Esposito", "Bianchi", "Romano", "Colombo", "Ricci", "Marino", "Greco",
           "Bruno", "Gallo", "Conti", "De Luca", "Mancini", "Costa", "Giordano", "Rizzo", "Lombardi", "Moretti",
           "Barbieri", "Fontana", "Santoro", "Mariani", "Rinaldi", "Caruso", "Ferrara", "Galli", "Martini", "Leone"),
    "en": ("Smith", "Johnson", "Williams", "Brown", "Jones", "Miller", "Davis", "Wilson", "Anderson", "Taylor",
           "Thomas", "Moore", "Jackson", "White", "Harris", "Clark", "Lewis", "Walker", "Hall", "Allen",
           "Young", "King", "Wright", "Scott", "Green", "Baker", "Adams", "Nelson", "Hill", "Campbell"),
    "de": ("Müller", "Schmidt", "Schneider", "Fischer", "Weber", "Meyer", "Wagner", "Becker", "Schulz", "Hoffmann",
           "Schäfer", "Koch", "Bauer", "Richter", "Klein", "Wolf", "Schröder", "Neumann", "Schwarz", "Zimmermann"),
    "es": ("García", "Rodríguez", "González", "Fernández", "López", "Martínez", "Sánchez", "Pérez", "Gómez", "Martín",
           "Jiménez", "Ruiz", "Hernández", "Díaz", "Moreno", "Muñoz", "Álvarez", "Romero", "Alonso", "Navarro"),
    "ja": ("Sato", "Suzuki", "Takahashi", "Tanaka", "Watanabe", "Ito", "Yamamoto", "Nakamura", "Kobayashi", "Kato",
           "Yoshida", "Yamada", "Sasaki", "Yamaguchi", "Matsumoto", "Inoue", "Kimura", "Hayashi", "Shimizu", "Mori"),
    "zh": ("Wang", "Li", "Zhang", "Liu", "Chen", "Yang", "Huang", "Zhao", "Wu", "Zhou",
           "Xu", "Sun", "Ma", "Zhu", "Hu", "Guo", "He", "Lin", "Gao", "Luo"),
    "ko": ("Kim", "Lee", "Park", "Choi", "Jung", "Kang", "Cho", "Yoon", "Jang", "Lim",
           "Han", "Oh", "Seo", "Shin", "Kwon", "Hwang", "Ahn", "Song", "Yoo", "Hong"),
    "ar": ("Al Maktoum", "Al Nahyan", "Al Mansoori", "Al Hashimi", "Al Falasi", "Al Suwaidi", "Al Mazrouei",
           "Al Qasimi", "Al Ketbi", "Al Zaabi", "Al Shamsi", "Al Marri", "Haddad", "Khoury", "Nasser", "Saleh"),
}

STREETS: dict[str, tuple[str, ...]] = {
    "FR": ("rue du Faubourg Saint-Honoré", "avenue Montaigne", "rue de Rivoli", "boulevard Haussmann",
           "rue de la Paix", "avenue Victor Hugo", "rue de Grenelle", "quai Voltaire", "rue Saint-Dominique"),
    "IT": ("Via Montenapoleone", "Via della Spiga", "Via Condotti", "Via dei Tornabuoni", "Corso Venezia",
           "Via Manzoni", "Via del Babuino", "Corso Magenta", "Via Borgonuovo"),
    "GB": ("Bond Street", "Sloane Street", "Mount Street", "Kensington Park Road", "Chelsea Embankment",
           "Marylebone High Street", "Brook Street", "Eaton Square", "Holland Park Avenue"),
    "DE": ("Maximilianstraße", "Theatinerstraße", "Kurfürstendamm", "Königsallee", "Goethestraße",
           "Leopoldstraße", "Prinzregentenstraße", "Unter den Linden"),
    "ES": ("Calle de Serrano", "Calle de Velázquez", "Paseo de Gracia", "Calle de Ortega y Gasset",
           "Avenida Diagonal", "Calle de José Ortega", "Calle de Goya"),
    "US": ("Madison Avenue", "Fifth Avenue", "Park Avenue", "Rodeo Drive", "Collins Avenue", "Central Park West",
           "Lexington Avenue", "Sunset Boulevard", "Brickell Avenue", "Greenwich Street"),
    "JP": ("Ginza", "Minami-Aoyama", "Roppongi", "Shirokanedai", "Daikanyama", "Shinsaibashi", "Azabudai"),
    "CN": ("Huaihai Middle Road", "Nanjing West Road", "Wangfujing Street", "Jianguo Road", "Fuxing Road",
           "Sanlitun Road", "Julu Road"),
    "HK": ("Queen's Road Central", "Canton Road", "Repulse Bay Road", "Peak Road", "Robinson Road",
           "Conduit Road"),
    "KR": ("Cheongdam-dong", "Apgujeong-ro", "Hannam-daero", "Dosan-daero", "Gangnam-daero"),
    "AE": ("Sheikh Zayed Road", "Jumeirah Beach Road", "Al Wasl Road", "Emirates Hills", "Palm Jumeirah"),
}

NUMBER_FIRST = {"FR", "GB", "US", "HK", "AE"}
"""Countries writing the house number before the street name."""


def ascii_name(text: str) -> str:
    """Lower-case ASCII form of a name for e-mail addresses (accents dropped, spaces removed)."""
    decomposed = unicodedata.normalize("NFKD", text)
    plain = "".join(c for c in decomposed if not unicodedata.combining(c))
    plain = plain.replace("ß", "ss").replace("'", "").replace(" ", "").replace("-", "")
    return plain.lower()
